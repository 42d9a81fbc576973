"""Who gets in, and as whom: the client's real address, the names nobody can claim, and
ending an attendee's sessions when the instructor resets them."""
