"""How the fleet paces itself: the shared rate governor and the retry policy."""
