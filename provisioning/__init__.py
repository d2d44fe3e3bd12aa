"""Fleet provisioning: CA, device enrolment bundles, broker config, revocation, signing."""
