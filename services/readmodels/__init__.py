"""The read models: how each event of the ledger changes them (one module per read model, merged in
apply). The projector process applies them to the database the API reads; an as-of answer applies
a scan's records to a database of its own (services.audit.as_of); replay applies the whole log."""
