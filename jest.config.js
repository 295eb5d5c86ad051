/** Jest: TypeScript through ts-jest (transpile only; `npm test` type-checks src, test, bench and examples with tsc -p tsconfig.test.json first). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 30000,
  maxWorkers: 2,
};
