"""intake: the back-pain symptom screen, triage and follow-up backend of a physical-therapy clinic."""
