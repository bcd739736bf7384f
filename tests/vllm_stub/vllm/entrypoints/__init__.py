"""Stand-in package: see tests/vllm_fake.py."""
