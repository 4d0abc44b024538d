"""Services: every state change is one function here, atomic, writing its audit event."""
