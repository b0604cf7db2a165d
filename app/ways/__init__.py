"""Ways in besides paying: free trials, promo codes and gifts, each a grant with a source of its own."""
