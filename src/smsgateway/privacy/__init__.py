"""Personal data: kept only as long as it serves (retention), and erased on request."""
