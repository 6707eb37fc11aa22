"""The shared rooms: what the daemon, `maasflow serve` and the simulator all use (errors,
logging, the embedded web server, systemd notices, option parsing)."""
