from mvcap_build.cli import main

main()
