"""The command line: starts every scan-ledger process, the local broker, and the whole system (`up`)."""
