"""Stage 7 building blocks: the Modelfile (and the proof its template is right), Ollama, Docker."""
