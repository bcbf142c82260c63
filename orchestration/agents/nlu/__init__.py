"""The local, offline NLU: one utterance -> intent, confidence and slots."""
