"""The wire contract shared by edge, central and provisioning: topics, message schemas,
size limits, JWS signing and verification, template sealing, broker transport settings."""
