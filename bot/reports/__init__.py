"""Reports for team leads: figures computed from the stored conversations and tickets."""
