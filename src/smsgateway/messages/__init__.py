"""Messages: the model and its state machine, the API, the queue and the dispatcher."""
