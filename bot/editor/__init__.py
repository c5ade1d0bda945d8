"""The knowledge-base editor: articles and revisions in the app database, review, publish."""
