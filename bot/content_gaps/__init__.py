"""Content gaps: customer questions the knowledge base failed, grouped by meaning for editors.

:mod:`bot.content_gaps.collect` finds the questions (unanswered, or answered and then marked
unhelpful) in the stored conversations; :mod:`bot.content_gaps.grouping` dedupes and groups
them by meaning with the live build's query encoder; :mod:`bot.content_gaps.service` puts
the two together with each group's nearest live article, and caches the result briefly.
"""
