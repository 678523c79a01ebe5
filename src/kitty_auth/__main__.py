"""`python -m kitty_auth`: the same CLI as the `kitty-auth` console script."""

from kitty_auth.console import main

if __name__ == "__main__":
    main()
