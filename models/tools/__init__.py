"""Build-time tools: weight readers, the TFLite writer, bundle builder and evaluation."""
