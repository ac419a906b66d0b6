"""The core every scan-ledger process shares: contracts, pure domain, edge adapters."""
