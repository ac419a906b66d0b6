"""The one error the local broker raises: `scanledger` prints it as one line, never a traceback."""


class BrokerError(Exception):
    """The local broker could not be fetched, started or reached."""
