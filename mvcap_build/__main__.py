from mvcap_build.cli import main

# The guard matters where a stage starts processes by spawning (vLLM on a GPU): the child
# imports this module again and must not run the command a second time.
if __name__ == "__main__":
    main()
