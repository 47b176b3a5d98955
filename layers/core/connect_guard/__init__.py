"""connect-guard core: typed events, settings, decisions and AWS adapters shared by every responder."""
