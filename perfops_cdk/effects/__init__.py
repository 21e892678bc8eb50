"""Effects: the only code that runs outside programs or calls AWS."""
