"""The trade ledger's SQL side that more than one service needs: the schema, the
engine factory and the history reads (``services/ledger`` writes; the API reads)."""
