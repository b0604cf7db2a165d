"""What stands in for Telegram and Stripe: realistic updates and events, and local servers that speak both APIs."""
