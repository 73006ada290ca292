"""How the fleet paces itself: the shared pace and the retry policy."""
