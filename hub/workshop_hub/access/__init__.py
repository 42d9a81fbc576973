"""Who gets in, and as whom: the login and its room code, passwords and login cards, the
throttle on guessing, the hub's secrets, the names nobody can claim, and the addresses the hub
is reached at."""
