"""Channels beyond the terminals' own: the phone channel's one-time codes (issue 16).

Central sends and checks the codes remote terminals ask for (``answers``, over the request
route of ``central.certification.templates``); the certification itself runs on the remote
terminal and arrives as a signed result like any other.
"""
