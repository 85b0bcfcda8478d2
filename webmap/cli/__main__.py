from webmap.cli import main

main()
