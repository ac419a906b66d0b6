"""The BYOC scan worker: a customer runs it next to their data; it claims chunks from the coordinator over HTTP."""
