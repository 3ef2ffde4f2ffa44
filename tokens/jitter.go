package tokens

import "math/rand/v2"

// jitter returns a random fraction in [0, 1); a variable so tests can fix it.
var jitter = rand.Float64
