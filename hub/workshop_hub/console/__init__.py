"""The instructor's console, a JupyterHub service: the room at a glance, exercise progress,
raised hands, announcements, revealed solutions, the shoulder view and the warm room."""
