"""Worker processes: one gRPC service per stage (stt, llm, tts), each backed by an engine."""
