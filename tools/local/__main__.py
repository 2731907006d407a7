from tools.local.main import main

main()
