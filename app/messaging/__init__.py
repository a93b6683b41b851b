"""Patient reminders: when they go out, what they say, how they are sent, what replies mean."""
