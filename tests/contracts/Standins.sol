// SPDX-License-Identifier: MIT
// Stand-ins for the redemption tests (tests/scenarios/redeem.rs), installed with anvil_setCode at the real
// Polygon addresses the settings name: they accept the real calls, move balances like the real
// contracts and record what they were asked. Compiled by tests/contracts/build.sh (solcjs from npm);
// the runtime bytecode is committed in tests/contracts/standins.json so the tests need no compiler.
pragma solidity ^0.8.20;

/// Conditional Tokens: ERC-1155 balances, operator approvals, and a burn the adapters call.
contract MockCTF {
    mapping(address => mapping(uint256 => uint256)) public balances;
    mapping(address => mapping(address => bool)) public approvals;

    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    function balanceOf(address owner, uint256 id) external view returns (uint256) {
        return balances[owner][id];
    }

    function setBalance(address owner, uint256 id, uint256 value) external {
        balances[owner][id] = value;
    }

    function setApprovalForAll(address operator, bool approved) external {
        approvals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function isApprovedForAll(address owner, address operator) external view returns (bool) {
        return approvals[owner][operator];
    }

    /// Results not reported yet by the oracle (a test sets them): `payoutDenominator` is 0 for
    /// those, as Conditional Tokens says until `reportPayouts`, and redemptions revert.
    mapping(bytes32 => bool) public unreported;

    /// Payout numerators a test reported (unset: the denominator is 1, as before any test set one).
    mapping(bytes32 => uint256[2]) public numerators;

    function payoutDenominator(bytes32 conditionId) external view returns (uint256) {
        if (unreported[conditionId]) return 0;
        uint256 sum = numerators[conditionId][0] + numerators[conditionId][1];
        return sum == 0 ? 1 : sum;
    }

    function payoutNumerators(bytes32 conditionId, uint256 index) external view returns (uint256) {
        return numerators[conditionId][index];
    }

    function setPayouts(bytes32 conditionId, uint256 n0, uint256 n1) external {
        numerators[conditionId] = [n0, n1];
    }

    function setUnreported(bytes32 conditionId, bool u) external {
        unreported[conditionId] = u;
    }

    /// Every condition a test names was prepared, with two outcome slots (as Polymarket's are).
    function getOutcomeSlotCount(bytes32) external pure returns (uint256) {
        return 2;
    }

    function burnAll(address owner, uint256 id) external returns (uint256 value) {
        require(approvals[owner][msg.sender], "CTF: adapter not approved");
        value = balances[owner][id];
        balances[owner][id] = 0;
    }

    function burn(address owner, uint256 id, uint256 amount) external {
        require(approvals[owner][msg.sender], "positions: router not approved");
        require(balances[owner][id] >= amount, "positions: more than held");
        balances[owner][id] -= amount;
    }
}

/// Exchange V3's Router: `redeem(conditionId, outcomeIndex, amount)` burns that many of the
/// caller's PositionManager shares (position id = conditionId << 8 | outcomeIndex; the Router must
/// be approved on the PositionManager) and pays pUSD at the resolution's payout.
contract MockRouter {
    address constant POSITION_MANAGER = 0x006F54F7f9A22e0000CC2AB60031000000ae9fEF;
    address constant PUSD = 0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB;

    mapping(uint256 => uint256) public payoutOf; // micro-pUSD per whole share
    uint256 public calls;

    function setPayout(uint256 positionId, uint256 payout) external {
        payoutOf[positionId] = payout;
    }

    function redeem(bytes31 conditionId, uint256 outcomeIndex, uint256 amount) external {
        require(outcomeIndex <= 1, "router: invalid outcome index");
        uint256 positionId = (uint256(uint248(conditionId)) << 8) | outcomeIndex;
        calls += 1;
        MockCTF(POSITION_MANAGER).burn(msg.sender, positionId, amount);
        MockPUSD(PUSD).mint(msg.sender, amount * payoutOf[positionId] / 1e6);
    }
}

/// pUSD: what a redemption pays.
contract MockPUSD {
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    function mint(address to, uint256 value) external {
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }
}

/// A collateral adapter: `redeemPositions(pUSD, 0, condition, indexSets)` takes the caller's whole
/// balance of the condition's two outcomes and pays pUSD at the resolution's payouts.
contract MockAdapter {
    address constant CTF = 0x4D97DCd97eC945f40cF65F87097ACe5EA0476045;
    address constant PUSD = 0xC011a7E12a19f7B1f670d46F03B03f3342E82DFB;

    mapping(bytes32 => uint256[2]) public tokensOf;
    mapping(bytes32 => uint256[2]) public payoutOf; // micro-pUSD per whole share
    uint256 public calls;
    bool public failing;

    event Redeemed(address indexed redeemer, bytes32 indexed conditionId, uint256 payout);

    function setMarket(bytes32 conditionId, uint256 t0, uint256 t1, uint256 p0, uint256 p1) external {
        tokensOf[conditionId] = [t0, t1];
        payoutOf[conditionId] = [p0, p1];
    }

    function setFailing(bool f) external {
        failing = f;
    }

    function redeemPositions(address collateral, bytes32 parent, bytes32 conditionId, uint256[] calldata indexSets)
        external
    {
        require(!failing, "adapter: failing on purpose");
        require(MockCTF(CTF).payoutDenominator(conditionId) > 0, "result for condition not received yet");
        require(collateral == PUSD, "adapter: collateral must be pUSD");
        require(parent == bytes32(0) && indexSets.length == 2, "adapter: bad arguments");
        calls += 1;
        uint256 payout;
        for (uint256 i = 0; i < 2; i++) {
            uint256 held = MockCTF(CTF).burnAll(msg.sender, tokensOf[conditionId][i]);
            payout += held * payoutOf[conditionId][i] / 1e6;
        }
        MockPUSD(PUSD).mint(msg.sender, payout);
        emit Redeemed(msg.sender, conditionId, payout);
    }
}

/// A Gnosis Safe with one owner and threshold 1: `execTransaction` checks the owner's EIP-712
/// signature of the SafeTx exactly as the real Safe hashes it, then makes the call as the Safe.
contract MockSafe {
    bytes32 constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(uint256 chainId,address verifyingContract)");
    bytes32 constant SAFE_TX_TYPEHASH = keccak256(
        "SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)"
    );

    address public owner;
    uint256 public nonce;

    event ExecutionSuccess(bytes32 txHash, uint256 payment);

    function setOwner(address o) external {
        owner = o;
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, block.chainid, address(this)));
    }

    function execTransaction(
        address to,
        uint256 value,
        bytes calldata data,
        uint8 operation,
        uint256 safeTxGas,
        uint256 baseGas,
        uint256 gasPrice,
        address gasToken,
        address payable refundReceiver,
        bytes calldata signatures
    ) external payable returns (bool success) {
        require(operation == 0, "safe: only calls");
        bytes32 structHash = keccak256(
            abi.encode(
                SAFE_TX_TYPEHASH, to, value, keccak256(data), operation, safeTxGas, baseGas, gasPrice, gasToken,
                refundReceiver, nonce
            )
        );
        bytes32 h = keccak256(abi.encodePacked(bytes1(0x19), bytes1(0x01), domainSeparator(), structHash));
        nonce++;
        require(signatures.length == 65, "safe: one signature");
        bytes32 r = bytes32(signatures[0:32]);
        bytes32 s = bytes32(signatures[32:64]);
        uint8 v = uint8(signatures[64]);
        require(ecrecover(h, v, r, s) == owner, "safe: not signed by the owner");
        (success,) = to.call{value: value}(data);
        require(success, "safe: the call failed");
        emit ExecutionSuccess(h, 0);
    }
}

/// The exchanges' stand-in for the detection tests: takes the operator's real `matchOrders`
/// calldata (any call at all) and emits the `OrderFilled` logs the test appended after it, as
/// the real exchange would when the settlement is mined. Decoders of the call ignore the trailer.
/// Like the real exchanges it answers `isOperator` (empty until the test adds one).
/// Trailer: abi.encode(bytes32[4][] topics, bytes[] data), then its length as the last word.
contract MockExchange {
    /// The exchanges' own operator registry (Auth): who may settle matches.
    mapping(address => bool) public isOperator;

    function addOperator(address who) external {
        isOperator[who] = true;
    }

    fallback() external {
        uint256 n = msg.data.length;
        require(n >= 36, "no trailer");
        uint256 len = uint256(bytes32(msg.data[n - 32:n]));
        require(len + 32 <= n, "bad trailer");
        (bytes32[4][] memory topics, bytes[] memory datas) =
            abi.decode(msg.data[n - 32 - len:n - 32], (bytes32[4][], bytes[]));
        for (uint256 i = 0; i < topics.length; i++) {
            bytes memory d = datas[i];
            bytes32 t0 = topics[i][0];
            bytes32 t1 = topics[i][1];
            bytes32 t2 = topics[i][2];
            bytes32 t3 = topics[i][3];
            assembly {
                log4(add(d, 32), mload(d), t0, t1, t2, t3)
            }
        }
    }
}
