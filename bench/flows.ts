// Placeholder until the flows benchmarks land.
export async function run(): Promise<void> {}
