// The tests' seeded PRNG is the simulator's (mulberry32): one implementation, so a failing case's seed
// replays the same way in every test that prints it.
export { type Rng, seededRng } from "../../src/sim/random.js";
