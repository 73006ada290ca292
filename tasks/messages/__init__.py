"""What arrives: the message models, their validation, and the consumer's door check."""
