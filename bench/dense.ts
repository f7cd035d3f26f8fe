// Placeholder until the dense benchmarks land.
export async function run(): Promise<void> {}
