"""The kiosk: a local web app (Starlette) showing the session's screens to the retiree."""
