"""Extensions that Rasa itself loads (Rasa 3.6, Python 3.10): nothing here imports the app."""
