"""The CLI's client-side commands: they talk to a gateway through gateway.client only."""
