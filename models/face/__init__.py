"""The face pipeline: detection, landmarks, alignment, embedding, comparison, quality."""
