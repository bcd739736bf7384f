"""`python -m vllm.entrypoints.openai.api_server`, answered by tests/vllm_fake.py."""

from vllm_fake import main

if __name__ == "__main__":
    main()
