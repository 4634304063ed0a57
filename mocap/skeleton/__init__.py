"""Skeleton definitions (joint names, format tables) and, later, the skeleton solve."""
