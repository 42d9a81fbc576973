"""The organizer's commands (`workshop-hub ...`): preflight, the rehearsal, the end of the
event, the roster, and the same workshop's values for Kubernetes."""
