"""What holding an entitlement gives where it is used: transitions, Telegram chat membership, reminders."""
