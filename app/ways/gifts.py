"""Gifts: a plan bought for someone else, redeemed by the first other user who opens its link."""
