/**
 * Jest: TypeScript through ts-jest (transpile only; `npm test` type-checks src, test, bench and
 * examples with tsc -p tsconfig.test.json first). `jose` ships only ES modules, which Jest's
 * CommonJS runtime cannot require on every supported Node, so ts-jest turns its files into
 * CommonJS too (the built gateway requires it natively).
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
    '/node_modules/jose/.+\\.js$': ['ts-jest', { diagnostics: false, tsconfig: { allowJs: true, module: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  testTimeout: 30000,
  maxWorkers: 2,
};
