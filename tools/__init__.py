"""Developer tools that live in the repository and are not installed with bpfsign."""
