"""The projector process: consumes the ledger into the read models (services.readmodels), and replay."""
