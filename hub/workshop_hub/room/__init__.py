"""The room: each attendee's server (spawner, profiles, GPU places, capped disks), the line
at 09:00, the room's limits, the fenced network and the Docker host they all run on."""
