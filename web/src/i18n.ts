import { createI18n } from 'vue-i18n'

const en = {
  nav: { merchant: 'Merchant', trade: 'Trade', wallet: 'Wallet', account: 'Account', share: 'Revenue share', login: 'Log in', signup: 'Sign up', logout: 'Log out', theme: 'Theme', language: 'Language' },
  common: { asset: 'Asset', available: 'Available', locked: 'Locked', total: 'Total', amount: 'Amount', price: 'Price', time: 'Time', status: 'Status', side: 'Side', type: 'Type', cancel: 'Cancel', submit: 'Submit', loading: 'Loading…', none: 'Nothing yet', email: 'Email', password: 'Password', copy: 'Copy', copied: 'Copied', back: 'Back' },
  trade: {
    markets: 'Markets', change: '24h change', volume: '24h volume', book: 'Order book', tape: 'Trades', chart: 'Chart', grouping: 'Group',
    buy: 'Buy', sell: 'Sell', limit: 'Limit', market: 'Market', stopLimit: 'Stop-limit', stop: 'Stop price', quantity: 'Quantity', byQuantity: 'By quantity', byAmount: 'By amount', spend: 'Spend', receive: 'Receive',
    tif: 'Time in force', postOnly: 'Post only', ioc: 'IOC', fok: 'FOK', gtc: 'GTC', fee: 'Fee (at most)', orderTotal: 'Total',
    openOrders: 'Open orders', orderHistory: 'Order history', tradeHistory: 'Trade history', cancelAll: 'Cancel all', filled: 'Filled', placed: 'Order placed', cancelled: 'Order cancelled',
    balances: 'Balances', signInToTrade: 'Log in or sign up to trade.', last: 'Last price', high: '24h high', low: '24h low', spread: 'Spread',
  },
  wallet: {
    title: 'Wallet', deposit: 'Deposit', withdraw: 'Withdraw', transfer: 'Send to a COSS user', history: 'History', depositAddress: 'Your deposit address (every asset of this chain)',
    confirmations: 'Confirmations', deposits: 'Deposits', withdrawals: 'Withdrawals', transfers: 'Transfers', testFunds: 'Get test funds', testFundsSent: 'Test funds sent on chain: they arrive as a deposit in a few blocks.',
    testFundsHint: 'This platform runs its own local chain: test ETH and tUSD cost nothing.', address: 'Address', fee: 'Network fee', receiveAmount: 'Recipient gets', totp: '2FA code', recipient: "Recipient's email",
    addressBook: 'Address book and allow-list', allowListOn: 'Withdrawals go only to the addresses below.', allowListOff: 'Withdrawals may go to any address; the book below fills the address field.', addAddress: 'Add address', allowListOnly: 'Allow only these', allowAny: 'Allow any address',
    statement: 'Statement (CSV)', needs2fa: 'Turn on two-factor authentication to withdraw.', requested: 'Withdrawal requested', sent: 'Sent', chainLink: 'Transaction',
  },
  auth: {
    login: 'Log in', signup: 'Create an account', totp: 'Authenticator code', recovery: 'Or a recovery code', forgot: 'Forgot your password?', noAccount: 'New to COSS?', haveAccount: 'Already have an account?',
    checkMail: 'Check your inbox: we sent a link to confirm your address.', verifying: 'Confirming your address…', verified: 'Your address is confirmed. You can log in.', reset: 'Reset password', resetSent: 'If an account uses this address, a reset link is on its way.', newPassword: 'New password', resetDone: 'Your password is changed and every device signed out. Log in again.', passwordHint: 'At least 10 characters.',
  },
  account: {
    title: 'Account', twoFactor: 'Two-factor authentication', enable2fa: 'Turn on 2FA', scan: 'Scan this code with your authenticator app, then enter the code it shows.', confirm: 'Confirm', recoveryCodes: 'Recovery codes: write them down now. Each works once, and they are not shown again.', on: 'On', off: 'Off', disable2fa: 'Turn off 2FA',
    sessions: 'Sessions and devices', thisDevice: 'this device', signOut: 'Sign out', signOutOthers: 'Sign out everywhere else', signedOut: 'Signed out',
    apiKeys: 'API keys', newKey: 'New API key', label: 'Label', permissions: 'Permissions', ipAllowList: 'IP allow-list (one per line, empty for any)', secretOnce: 'The secret is shown once. Store it now.', revoke: 'Revoke', profile: 'Profile', displayName: 'Display name', country: 'Country', save: 'Save', saved: 'Saved',
  },
  checkout: {
    merchant: 'A COSS merchant', order: 'Order', waiting: 'Waiting for your payment', expiresIn: 'Expires in', expired: 'This invoice has expired.', processing: 'Payment seen: waiting for its confirmations.',
    paid: 'Paid. Thank you!', late: 'Paid after the invoice expired: the merchant will settle or refund it.', invalid: 'This invoice is no longer valid.', live: 'Live', payWith: 'Pay with',
    send: 'Send', qr: 'Payment QR code: scan it with any Ethereum wallet', to: 'to', openWallet: 'Open in a wallet', copyUri: 'Copy payment link',
    confirmations: 'Counted after {n} confirmations.', payFromBalance: 'Pay {amount} {asset} from my COSS balance', signInToPay: 'Log in to pay from your COSS balance: instant, no network fee.',
    receipt: 'Receipt', payments: 'Payments', fromBalance: 'From a COSS balance', confirmed: 'Confirmed', confirming: '{n} confirmations', paidAt: 'Paid at', return: 'Back to the shop',
  },
  pos: {
    title: 'Point of sale', products: 'Products', noProducts: 'No products in this currency: add them on the merchant screen, or key in amounts.', keypad: 'Keypad', addAmount: 'Add amount', cart: 'Cart', amount: 'Amount', remove: 'Remove',
    subtotal: 'Subtotal', currency: 'Currency', tax: 'Tax', tip: 'Tip', customTip: 'Other', charge: 'Charge', paid: 'PAID', unpaid: 'Waiting for payment', confirming: 'Payment seen: confirming', notPaid: 'Not paid',
    breakdown: 'Tax {tax} · tip {tip} included', newSale: 'New sale',
  },
  merchant: {
    title: 'Merchant', openPos: 'Open the point of sale', apiKeys: 'API keys (merchant permission)', invoices: 'Invoices', webhooks: 'Webhooks', products: 'POS products', reports: 'Reports', all: 'All',
    invoice: 'Invoice', checkout: 'Checkout page', settled: '{net} {asset} settled (fee {fee})', refund: 'Refund {amount} {asset}: {status}', markSettled: 'Mark settled', markInvalid: 'Mark invalid',
    refundKind: 'What to refund', refundAll: 'Everything', refundOverpaid: 'The overpaid part', refundAmount: 'An amount', doRefund: 'Refund', refunded: 'Refund made', refundLink: 'Send the payer this link to give their address:',
    endpointUrl: 'https://your.site/webhooks/coss', addEndpoint: 'Add endpoint', secretOnce: 'Signing secret (shown once):', disable: 'Turn off', enable: 'Turn on', event: 'Event', attempts: 'Attempts', redeliver: 'Send again', redelivered: 'Queued again',
    productName: 'Product name', addProduct: 'Add product',
    report: { invoices: 'Invoices', payments: 'Payments', settlements: 'Settlements', refunds: 'Refunds' },
  },
  refund: { title: 'Your refund', what: '{merchant} refunds you {amount} {asset}.', address: 'Your {asset} address', send: 'Send my refund', sent: 'Your refund is on its way.', status: 'Refund status: {status}' },
  share: { title: 'Revenue share', week: 'Week', root: 'Published root', myShare: 'My share', verify: 'Verify', verified: 'Verified in this browser: the leaf and its path lead to the published root.', mismatch: 'Does not match the published root.', none: 'No weeks yet.' },
  errors: {
    '-2010': 'The order was refused: {msg}', '-1013': 'The price or quantity is off the market\'s grid: {msg}', '-2011': 'That order is no longer open.',
    insufficient: 'Not enough balance for this order.', network: 'The platform cannot be reached. Check your connection.',
  },
}

type Messages = typeof en

const ko: Messages = {
  nav: { merchant: '가맹점', trade: '거래', wallet: '지갑', account: '계정', share: '수익 분배', login: '로그인', signup: '회원가입', logout: '로그아웃', theme: '테마', language: '언어' },
  common: { asset: '자산', available: '사용 가능', locked: '잠김', total: '합계', amount: '금액', price: '가격', time: '시간', status: '상태', side: '구분', type: '유형', cancel: '취소', submit: '제출', loading: '불러오는 중…', none: '아직 없음', email: '이메일', password: '비밀번호', copy: '복사', copied: '복사됨', back: '뒤로' },
  trade: {
    markets: '마켓', change: '24시간 변동', volume: '24시간 거래량', book: '호가창', tape: '체결', chart: '차트', grouping: '묶음',
    buy: '매수', sell: '매도', limit: '지정가', market: '시장가', stopLimit: '스톱 지정가', stop: '감시 가격', quantity: '수량', byQuantity: '수량 기준', byAmount: '금액 기준', spend: '지불', receive: '수령',
    tif: '유효 조건', postOnly: '포스트 온리', ioc: 'IOC', fok: 'FOK', gtc: 'GTC', fee: '수수료 (최대)', orderTotal: '총액',
    openOrders: '미체결 주문', orderHistory: '주문 내역', tradeHistory: '체결 내역', cancelAll: '모두 취소', filled: '체결됨', placed: '주문 완료', cancelled: '주문 취소됨',
    balances: '잔고', signInToTrade: '거래하려면 로그인하거나 가입하세요.', last: '현재가', high: '24시간 최고', low: '24시간 최저', spread: '스프레드',
  },
  wallet: {
    title: '지갑', deposit: '입금', withdraw: '출금', transfer: 'COSS 사용자에게 보내기', history: '내역', depositAddress: '입금 주소 (이 체인의 모든 자산)',
    confirmations: '컨펌', deposits: '입금', withdrawals: '출금', transfers: '이체', testFunds: '테스트 자금 받기', testFundsSent: '테스트 자금을 체인으로 보냈습니다. 몇 블록 뒤 입금으로 들어옵니다.',
    testFundsHint: '이 플랫폼은 자체 로컬 체인을 실행 중입니다. 테스트 ETH와 tUSD는 무료입니다.', address: '주소', fee: '네트워크 수수료', receiveAmount: '받는 금액', totp: '2단계 인증 코드', recipient: '받는 사람 이메일',
    addressBook: '주소록과 허용 목록', allowListOn: '아래 주소로만 출금할 수 있습니다.', allowListOff: '어느 주소로든 출금할 수 있습니다. 아래 주소록이 주소 입력을 채워 줍니다.', addAddress: '주소 추가', allowListOnly: '이 주소만 허용', allowAny: '모든 주소 허용',
    statement: '거래 명세서 (CSV)', needs2fa: '출금하려면 2단계 인증을 켜세요.', requested: '출금 요청됨', sent: '전송됨', chainLink: '트랜잭션',
  },
  auth: {
    login: '로그인', signup: '계정 만들기', totp: '인증 앱 코드', recovery: '또는 복구 코드', forgot: '비밀번호를 잊으셨나요?', noAccount: 'COSS가 처음이신가요?', haveAccount: '이미 계정이 있으신가요?',
    checkMail: '받은편지함을 확인하세요. 주소 확인 링크를 보냈습니다.', verifying: '주소를 확인하는 중…', verified: '주소가 확인되었습니다. 로그인할 수 있습니다.', reset: '비밀번호 재설정', resetSent: '이 주소를 쓰는 계정이 있다면 재설정 링크가 발송됩니다.', newPassword: '새 비밀번호', resetDone: '비밀번호가 바뀌었고 모든 기기에서 로그아웃되었습니다. 다시 로그인하세요.', passwordHint: '10자 이상.',
  },
  account: {
    title: '계정', twoFactor: '2단계 인증', enable2fa: '2단계 인증 켜기', scan: '인증 앱으로 이 코드를 스캔한 뒤 표시된 코드를 입력하세요.', confirm: '확인', recoveryCodes: '복구 코드: 지금 적어 두세요. 각각 한 번만 쓸 수 있고 다시 표시되지 않습니다.', on: '켜짐', off: '꺼짐', disable2fa: '2단계 인증 끄기',
    sessions: '세션과 기기', thisDevice: '이 기기', signOut: '로그아웃', signOutOthers: '다른 모든 기기에서 로그아웃', signedOut: '로그아웃됨',
    apiKeys: 'API 키', newKey: '새 API 키', label: '이름', permissions: '권한', ipAllowList: 'IP 허용 목록 (한 줄에 하나, 비우면 모두 허용)', secretOnce: '비밀 키는 한 번만 표시됩니다. 지금 저장하세요.', revoke: '폐기', profile: '프로필', displayName: '표시 이름', country: '국가', save: '저장', saved: '저장됨',
  },
  checkout: {
    merchant: 'COSS 가맹점', order: '주문', waiting: '결제를 기다리는 중', expiresIn: '남은 시간', expired: '청구서가 만료되었습니다.', processing: '결제가 확인되었습니다. 컨펌을 기다리는 중입니다.',
    paid: '결제 완료. 감사합니다!', late: '만료 후 결제되었습니다. 가맹점이 정산하거나 환불합니다.', invalid: '더 이상 유효하지 않은 청구서입니다.', live: '실시간', payWith: '결제 자산',
    send: '보낼 금액', qr: '결제 QR 코드: 아무 이더리움 지갑으로 스캔하세요', to: '받는 주소', openWallet: '지갑에서 열기', copyUri: '결제 링크 복사',
    confirmations: '{n}회 컨펌 후 반영됩니다.', payFromBalance: 'COSS 잔고에서 {amount} {asset} 결제', signInToPay: '로그인하면 COSS 잔고로 즉시, 네트워크 수수료 없이 결제할 수 있습니다.',
    receipt: '영수증', payments: '결제 내역', fromBalance: 'COSS 잔고', confirmed: '컨펌 완료', confirming: '{n}회 컨펌', paidAt: '결제 시각', return: '가게로 돌아가기',
  },
  pos: {
    title: '판매 단말기', products: '상품', noProducts: '이 통화의 상품이 없습니다. 가맹점 화면에서 추가하거나 금액을 입력하세요.', keypad: '키패드', addAmount: '금액 추가', cart: '장바구니', amount: '금액', remove: '삭제',
    subtotal: '소계', currency: '통화', tax: '세금', tip: '팁', customTip: '직접 입력', charge: '결제 요청', paid: '결제 완료', unpaid: '결제 대기 중', confirming: '결제 확인 중', notPaid: '미결제',
    breakdown: '세금 {tax} · 팁 {tip} 포함', newSale: '새 판매',
  },
  merchant: {
    title: '가맹점', openPos: '판매 단말기 열기', apiKeys: 'API 키 (가맹점 권한)', invoices: '청구서', webhooks: '웹훅', products: '단말기 상품', reports: '보고서', all: '전체',
    invoice: '청구서', checkout: '결제 페이지', settled: '{net} {asset} 정산 (수수료 {fee})', refund: '환불 {amount} {asset}: {status}', markSettled: '정산 처리', markInvalid: '무효 처리',
    refundKind: '환불 대상', refundAll: '전액', refundOverpaid: '초과 결제분', refundAmount: '금액 지정', doRefund: '환불', refunded: '환불 완료', refundLink: '결제자에게 이 링크를 보내 주소를 받으세요:',
    endpointUrl: 'https://your.site/webhooks/coss', addEndpoint: '엔드포인트 추가', secretOnce: '서명 비밀 키 (한 번만 표시):', disable: '끄기', enable: '켜기', event: '이벤트', attempts: '시도', redeliver: '다시 보내기', redelivered: '다시 대기열에 넣음',
    productName: '상품 이름', addProduct: '상품 추가',
    report: { invoices: '청구서', payments: '결제', settlements: '정산', refunds: '환불' },
  },
  refund: { title: '환불', what: '{merchant}에서 {amount} {asset}를 환불합니다.', address: '{asset} 받을 주소', send: '환불 받기', sent: '환불이 전송 중입니다.', status: '환불 상태: {status}' },
  share: { title: '수익 분배', week: '주차', root: '공개된 루트', myShare: '내 몫', verify: '검증', verified: '이 브라우저에서 검증됨: 리프와 경로가 공개된 루트로 이어집니다.', mismatch: '공개된 루트와 일치하지 않습니다.', none: '아직 주차가 없습니다.' },
  errors: {
    '-2010': '주문이 거부되었습니다: {msg}', '-1013': '가격 또는 수량이 마켓 단위에 맞지 않습니다: {msg}', '-2011': '이미 열려 있지 않은 주문입니다.',
    insufficient: '이 주문에 필요한 잔고가 부족합니다.', network: '플랫폼에 연결할 수 없습니다. 연결을 확인하세요.',
  },
}

const saved = localStorage.getItem('coss.locale')
const locale = saved === 'ko' || saved === 'en' ? saved : navigator.language.startsWith('ko') ? 'ko' : 'en'

export const i18n = createI18n({ legacy: false, locale, fallbackLocale: 'en', messages: { en, ko } })

export function setLocale(next: 'en' | 'ko') {
  i18n.global.locale.value = next
  localStorage.setItem('coss.locale', next)
  document.documentElement.lang = next
}
